"""Review against a real argilla-server started by `curate argilla up` (Debian's redis-server,
osmem-server, argilla-server in its own venv): push, answers from two reviewers through the
REST API, pull, resolution, status, and the errors a user meets."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate.cli import add_stage_commands, app

pytestmark = pytest.mark.extras
pytest.importorskip("argilla")
httpx = pytest.importorskip("httpx")
if shutil.which("redis-server") is None:
    pytest.skip("Debian's redis-server is not installed", allow_module_level=True)

add_stage_commands()
runner = CliRunner()
SHARED = Path.home() / ".cache" / "curate"  # argilla-server's venv, kept between sessions


@pytest.fixture(scope="module")
def argilla_server(tmp_path_factory):
    from curate.review import local

    old = os.environ.get("CURATE_HOME")
    os.environ["CURATE_HOME"] = str(SHARED)
    local.server_python()  # made once, then reused
    home = tmp_path_factory.mktemp("curate-home")
    os.environ["CURATE_HOME"] = str(home)
    (home / "argilla").mkdir()
    (home / "argilla" / "venv").symlink_to(SHARED / "argilla" / "venv")
    for name in ("ARGILLA_API_URL", "ARGILLA_API_KEY"):
        os.environ.pop(name, None)
    started = runner.invoke(app, ["argilla", "up"])
    assert started.exit_code == 0, started.output
    yield local.running()
    runner.invoke(app, ["argilla", "down"])
    if old is None:
        os.environ.pop("CURATE_HOME", None)
    else:
        os.environ["CURATE_HOME"] = old


def write_recipe(root: Path, name: str, count: int, unboxed: float, extra: str = "") -> Path:
    """A recipe over `count` math problems whose unboxed answers make borderline traces."""
    from tests.conftest import math_rows, write_jsonl

    problems = write_jsonl(root / "p.jsonl", math_rows(count))
    recipe = root / "r.yaml"
    recipe.write_text(
        f"name: {name}\n"
        f"source: {{kind: files, path: {problems}, columns: {{problem: question, id: uid}}}}\n"
        f"teacher: {{backend: simulated, samples: 4, max_tokens: 512, unboxed_rate: {unboxed}}}\n"
        "verify: {kind: math, workers: 1}\n"
        "select: {policy: all_correct}\n" + extra
    )
    return recipe


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("review-run")
    recipe = write_recipe(root, "rv", 30, 0.2)
    result = runner.invoke(app, ["run", str(recipe), "--run-dir", str(root / "run")])
    assert result.exit_code == 0, result.output
    waiting = len((root / "run" / "review" / "borderline.jsonl").read_text().splitlines())
    # a server is running, so the run itself sent its borderline traces
    assert f"review:  {waiting} borderline traces in Argilla ({waiting} new)" in result.output
    return root / "run"


def answer(server, record_id: str, reviewer: str, body: dict) -> None:
    key = server.reviewers[reviewer]["api_key"]
    reply = httpx.post(
        f"{server.url}/api/v1/records/{record_id}/responses",
        json=body,
        headers={"X-Argilla-Api-Key": key},
    )
    assert reply.status_code == 201, reply.text


def test_push_twice_then_answers_come_back_resolved(argilla_server, run_dir: Path):
    from curate.review.argilla import connect, dataset_for, list_records, load_task

    sent = len((run_dir / "review" / "borderline.jsonl").read_text().splitlines())
    assert sent > 3
    again = runner.invoke(app, ["review", "push", str(run_dir)])
    assert again.exit_code == 0, again.output
    assert f", 0 sent, {sent} already there" in again.output  # nothing twice, nothing touched
    connection = connect()
    dataset = dataset_for(connection, run_dir, load_task())
    records = list_records(connection, str(dataset.id), False)
    assert len(records) == sent and len({r["external_id"] for r in records}) == sent
    first_id, second_id, third_id = (r["id"] for r in records[:3])
    yes = {"status": "submitted", "values": {"correct": {"value": "correct"}}}
    no = {
        "status": "submitted",
        "values": {"correct": {"value": "incorrect"}, "corrected_reference": {"value": "42"}},
    }
    answer(argilla_server, first_id, "reviewer1", yes)
    answer(argilla_server, first_id, "reviewer2", yes)
    answer(argilla_server, second_id, "reviewer1", no)
    answer(argilla_server, second_id, "reviewer2", no)
    answer(argilla_server, third_id, "reviewer1", yes)
    answer(argilla_server, third_id, "reviewer2", {"status": "discarded", "values": None})
    pulled = runner.invoke(app, ["review", "pull", str(run_dir)])
    assert pulled.exit_code == 0, pulled.output
    decisions = {
        d["record"]: d
        for d in map(json.loads, (run_dir / "review" / "decisions.jsonl").read_text().splitlines())
    }
    by_id = {r["id"]: r["external_id"] for r in records}
    assert decisions[by_id[first_id]]["decision"] == "accept"
    assert decisions[by_id[second_id]]["decision"] == "reject"
    assert decisions[by_id[second_id]]["corrected_reference"] == "42"
    assert decisions[by_id[third_id]]["decision"] == "undecided"  # one submitted of two
    assert {a["status"] for a in decisions[by_id[third_id]]["answers"]} == {
        "submitted",
        "discarded",
    }
    status = runner.invoke(app, ["review", "status", str(run_dir)]).output
    assert "reviewer1: submitted 3" in status and "reviewer2: discarded 1, submitted 2" in status
    recipe = run_dir.parent / "r.yaml"  # the decisions, applied by the pipeline
    recipe.write_text(recipe.read_text() + "review: {undecided: keep}\n")
    applied = runner.invoke(app, ["run", str(recipe), "--run-dir", str(run_dir)])
    assert applied.exit_code == 0, applied.output
    counts = json.loads((run_dir / "stats.json").read_text())["review"]["counts"]
    assert (counts["accepted"], counts["rejected"], counts["references_corrected"]) == (1, 1, 1)


def choose(page, option: str, seconds: float = 60) -> None:
    """Click an answer until the page shows it taken: on a busy machine a click can land
    before the page is ready for it (clicking a taken answer again would clear it)."""
    import time

    deadline = time.monotonic() + seconds
    while not page.locator(f"#{option}").is_checked():
        assert time.monotonic() < deadline, f"the UI never took the answer {option}"
        page.locator(f"label[for={option}]").click()
        page.wait_for_timeout(300)


def test_a_reviewer_answers_in_the_web_ui(argilla_server, run_dir: Path):
    """Headless Debian chromium driven by Playwright (from PyPI; it downloads no browser)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed")
    from curate.review import argilla

    session = argilla.open_session(run_dir)
    password = argilla_server.reviewers["reviewer1"]["password"]
    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{argilla_server.url}/sign-in")
        page.locator("input[type=text]").first.fill("reviewer1")
        page.locator("input[type=password]").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text(session.dataset_name).first.click()
        page.wait_for_load_state("networkidle")
        submit = page.get_by_role("button", name="Submit")
        choose(page, "correct_correct")  # over the verifier's suggestion, if there is one
        choose(page, "reasoning_sound_5")
        submit.click()
        page.wait_for_load_state("networkidle")
        browser.close()
    names = argilla.usernames(session.connection)
    records = argilla.list_records(session.connection, session.dataset_id, True)
    from_ui = [
        answer
        for record in records
        for answer in argilla.answers_of(record, names)
        if answer["reviewer"] == "reviewer1" and answer.get("reasoning_sound") == 5
    ]
    assert from_ui == [
        {"reviewer": "reviewer1", "status": "submitted", "correct": "correct", "reasoning_sound": 5}
    ]


def test_a_wrong_key_and_an_absent_server_are_one_clear_error(argilla_server, run_dir, monkeypatch):
    monkeypatch.setenv("ARGILLA_API_URL", argilla_server.url)
    monkeypatch.setenv("ARGILLA_API_KEY", "not-a-key")
    refused = runner.invoke(app, ["review", "push", str(run_dir)])
    assert refused.exit_code == 1 and "refused the key" in refused.output
    assert "Traceback" not in refused.output and "not-a-key" not in refused.output
    monkeypatch.setenv("ARGILLA_API_URL", "http://127.0.0.1:9")
    absent = runner.invoke(app, ["review", "push", str(run_dir)])
    assert absent.exit_code == 1 and "cannot reach Argilla at http://127.0.0.1:9" in absent.output


def test_a_missing_workspace_is_named_with_the_way_to_make_it(argilla_server, run_dir, monkeypatch):
    monkeypatch.setenv("ARGILLA_WORKSPACE", "no-such-space")
    refused = runner.invoke(app, ["review", "push", str(run_dir)])
    assert refused.exit_code == 1, refused.output
    assert "has no workspace 'no-such-space' (the key's workspaces: review)" in refused.output
    assert "rg.Workspace(name='no-such-space').create()" in refused.output
    assert "Traceback" not in refused.output and "NoneType" not in refused.output


def test_an_audit_round_trip_through_argilla_is_blind(argilla_server, run_dir: Path):
    """`curate audit --by argilla` sends a stratified sample to its own dataset, without the
    verdict or a suggestion; reviewers' answers come back as labels and intervals."""
    from curate.review import argilla
    from curate.review.audit import audit_dataset

    sent = runner.invoke(app, ["audit", str(run_dir), "--by", "argilla", "--width", "0.6"])
    assert sent.exit_code == 0, sent.output
    again = runner.invoke(app, ["audit", str(run_dir), "--by", "argilla", "--width", "0.6"])
    assert ", 0 sent to Argilla" in again.output  # nothing twice
    session = argilla.open_session(run_dir, name=audit_dataset(run_dir))
    records = argilla.list_records(session.connection, session.dataset_id, False)
    sample = (run_dir / "review" / "audit_sample.jsonl").read_text().splitlines()
    assert len(records) == len(sample) > 3
    for record in records:
        shown = " ".join(str(v) for v in (record.get("fields") or {}).values())
        assert "not shown" in shown and "correct (" not in shown  # blind
        assert not record.get("suggestions")
    review_dataset = argilla.open_session(run_dir).dataset_id
    assert review_dataset != session.dataset_id  # the review queue is left alone
    yes = {"status": "submitted", "values": {"correct": {"value": "correct"}}}
    no = {"status": "submitted", "values": {"correct": {"value": "incorrect"}}}
    for record in records[:2]:
        for reviewer in ("reviewer1", "reviewer2"):
            answer(argilla_server, record["id"], reviewer, yes)
    for reviewer in ("reviewer1", "reviewer2"):
        answer(argilla_server, records[2]["id"], reviewer, no)
    pulled = runner.invoke(app, ["audit", str(run_dir), "--labels", "argilla"])
    assert pulled.exit_code == 0, pulled.output
    report = json.loads((run_dir / "reports" / "audit.json").read_text())
    assert report["by"] == "people in Argilla"
    assert report["labelled"] == 3 and report["undecided"] == len(sample) - 3


def test_the_resolution_rules():
    from curate.review.argilla import resolve

    yes = {"status": "submitted", "correct": "correct"}
    no = {"status": "submitted", "correct": "incorrect", "corrected_reference": " 7 "}
    unsure = {"status": "submitted", "correct": "unsure"}
    assert resolve([yes, yes], "majority", 2) == ("accept", None)
    assert resolve([yes, no], "majority", 2) == ("undecided", "7")
    assert resolve([yes, no, no], "majority", 2) == ("reject", "7")
    assert resolve([yes, unsure], "unanimous", 2) == ("undecided", None)
    assert resolve([no], "any_incorrect", 2) == ("reject", "7")
    assert resolve([yes], "majority", 2) == ("undecided", None)  # not enough reviewers yet


def test_a_server_killed_mid_push_loses_nothing_and_duplicates_nothing(
    argilla_server, tmp_path: Path, monkeypatch
):
    """Last in this file: it restarts the module's server (new port, same data and accounts)."""
    import signal

    from curate.review import argilla, local

    recipe = write_recipe(tmp_path, "killed", 40, 0.3, "review: {push: never}\n")
    run_dir = tmp_path / "run"
    made = runner.invoke(app, ["run", str(recipe), "--run-dir", str(run_dir)])
    assert made.exit_code == 0 and "not sent (review.push: never)" in made.output, made.output
    total = len((run_dir / "review" / "borderline.jsonl").read_text().splitlines())
    assert total > 9
    monkeypatch.setattr(argilla, "PUSH_BATCH", 3)
    sent_batches: list[list[dict]] = []
    real_upsert = argilla.upsert

    def killed_before_the_third_batch(connection, dataset_id, items):
        if len(sent_batches) == 2:
            os.killpg(local.running().pids["server"], signal.SIGKILL)
        real_upsert(connection, dataset_id, items)
        sent_batches.append(items)

    monkeypatch.setattr(argilla, "upsert", killed_before_the_third_batch)
    broken = runner.invoke(app, ["review", "push", str(run_dir)])
    assert broken.exit_code == 1 and "cannot reach Argilla" in broken.output, broken.output
    assert "Traceback" not in broken.output
    recorded = json.loads((run_dir / "review" / "sent.json").read_text())["records"]
    assert len(recorded) == 6  # the two batches the server took, written as they landed
    restarted = runner.invoke(app, ["argilla", "up"])
    assert restarted.exit_code == 0, restarted.output
    monkeypatch.setattr(argilla, "upsert", real_upsert)
    resumed = runner.invoke(app, ["review", "push", str(run_dir)])
    assert f"{total - 6} sent, 6 already there" in resumed.output, resumed.output
    session = argilla.open_session(run_dir)
    argilla.upsert(session.connection, session.dataset_id, sent_batches[0])  # a lost reply
    records = argilla.list_records(session.connection, session.dataset_id, False)
    assert sorted(r["external_id"] for r in records) == sorted(
        json.loads(line)["record"]
        for line in (run_dir / "review" / "borderline.jsonl").read_text().splitlines()
    )
    # answers given before a second kill come back whole on pull after the restart
    yes = {"status": "submitted", "values": {"correct": {"value": "correct"}}}
    for record in records:
        for reviewer in ("reviewer1", "reviewer2"):
            answer(local.running(), record["id"], reviewer, yes)
    os.killpg(local.running().pids["server"], signal.SIGKILL)
    assert runner.invoke(app, ["argilla", "up"]).exit_code == 0
    pulled = runner.invoke(app, ["review", "pull", str(run_dir)])
    assert pulled.exit_code == 0, pulled.output
    decisions = [
        json.loads(line)
        for line in (run_dir / "review" / "decisions.jsonl").read_text().splitlines()
    ]
    assert sorted(d["record"] for d in decisions) == sorted(r["external_id"] for r in records)
    assert {d["decision"] for d in decisions} == {"accept"}
    assert all(len(d["answers"]) == 2 for d in decisions)
