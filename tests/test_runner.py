import json
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest

from curate.errors import RecipeError
from curate.generate.stage import GenerateStage
from curate.recipe import load_recipe
from curate.runner import run_recipe
from curate.stats import funnel_problems
from curate.store import RunStore
from curate.verify.stage import VerifyStage
from tests.conftest import write_jsonl


def mtimes(run_dir: Path, files: str = "part-*.parquet") -> dict[str, int]:
    return {
        str(p.relative_to(run_dir)): p.stat().st_mtime_ns for p in (run_dir / "stages").rglob(files)
    }


def forbid(monkeypatch, stage_class) -> None:
    def refuse(self, frame):
        raise AssertionError(f"{stage_class.name} ran again")

    monkeypatch.setattr(stage_class, "process", refuse)


def test_end_to_end_dataset_and_funnel(make_recipe, tmp_path: Path):
    run_dir = tmp_path / "run"
    result = run_recipe(load_recipe(make_recipe()), run_dir)
    stats = result.stats
    assert list(stats) == ["source", "generate", "verify", "select", "dataset"]
    assert funnel_problems(stats) == []
    assert stats["generate"]["generated"] == 40 * 4
    assert stats["select"]["out"] == result.dataset_rows > 0
    assert set(stats["select"]["dropped"]) <= {"incorrect", "unverifiable"}
    loaded = datasets.load_dataset(str(run_dir / "dataset"), split="train")
    assert loaded.num_rows == result.dataset_rows
    assert {
        "prompt",
        "reasoning",
        "completion",
        "problem",
        "reference",
        "model",
        "problem_id",
        "verdict",
    } <= set(loaded.column_names)
    assert set(loaded["verdict"]) == {"correct"} and set(loaded["model"]) == {"simulated"}
    assert loaded[0]["prompt"][-1]["role"] == "user"
    ledger = pq.read_table(run_dir / "ledger")
    assert ledger.num_rows == 160  # every trace, dropped or not
    assert ledger.filter(ledger["dropped"].is_null()).num_rows == result.dataset_rows
    card = (run_dir / "dataset" / "README.md").read_text()
    assert "Not model output" in card and "| select |" in card
    assert "name: t" in (run_dir / "recipe.yaml").read_text()


def test_rerun_of_finished_run_does_no_work(make_recipe, tmp_path: Path, monkeypatch):
    run_dir = tmp_path / "run"
    recipe = load_recipe(make_recipe())
    first = run_recipe(recipe, run_dir)
    before = mtimes(run_dir)
    forbid(monkeypatch, GenerateStage)
    forbid(monkeypatch, VerifyStage)
    second = run_recipe(recipe, run_dir)
    assert second.stats == first.stats
    assert mtimes(run_dir) == before


def test_changing_a_stage_reruns_it_and_later_stages_only(make_recipe, tmp_path: Path, monkeypatch):
    run_dir = tmp_path / "run"
    run_recipe(load_recipe(make_recipe()), run_dir)
    before = mtimes(run_dir, "_stage.json")  # a stage's marker is written when it runs
    forbid(monkeypatch, GenerateStage)
    result = run_recipe(load_recipe(make_recipe(), ["verify.timeout_s=3"]), run_dir)
    after = mtimes(run_dir, "_stage.json")
    changed = {k.split("/")[1] for k in after if after[k] != before.get(k)}
    assert changed == {"02-verify", "03-select"}
    assert funnel_problems(result.stats) == []


def test_changing_temperature_regenerates_but_shard_size_does_not(make_recipe, tmp_path):
    run_dir = tmp_path / "run"
    run_recipe(load_recipe(make_recipe()), run_dir)
    hot = run_recipe(load_recipe(make_recipe(), ["teacher.temperature=1.0"]), run_dir)
    assert hot.stats["generate"]["counts"]["requests_sent"] == 40
    again = run_recipe(
        load_recipe(make_recipe(), ["teacher.temperature=1.0", "run.shard_size=7"]), run_dir
    )
    assert again.stats["generate"]["counts"].get("requests_sent", 0) == 0
    assert again.stats["generate"]["counts"]["cache_hits"] == 160


def test_duplicate_problems_are_kept_in_the_ledger_as_dropped(tmp_path: Path, make_recipe):
    rows = [
        {"question": "What is 1+1?", "answer": "2", "uid": "a"},
        {"question": "What is  1+1?", "answer": "2", "uid": "b"},
    ]
    path = write_jsonl(tmp_path / "dups.jsonl", rows)
    recipe = make_recipe(
        source={
            "kind": "files",
            "path": str(path),
            "columns": {"problem": "question", "reference": "answer"},
        }
    )
    result = run_recipe(load_recipe(recipe), tmp_path / "run")
    assert result.stats["source"] == {
        **result.stats["source"],
        "in": 2,
        "out": 1,
        "dropped": {"duplicate_problem": 1},
    }
    ledger = pq.read_table(tmp_path / "run" / "ledger").to_pylist()
    dropped = [r for r in ledger if r["dropped"] == "duplicate_problem"]
    assert len(dropped) == 1 and dropped[0]["dropped_at"] == "source"
    assert funnel_problems(result.stats) == []


def test_stage_order_is_checked_before_any_work(make_recipe, tmp_path: Path):
    recipe = load_recipe(make_recipe(stages=["verify", "generate"]))
    with pytest.raises(RecipeError, match="stage 'verify' reads completion"):
        run_recipe(recipe, tmp_path / "run")
    assert not (tmp_path / "run" / "stages" / "00-source").exists()
    with pytest.raises(RecipeError, match="unknown stage 'verfy'"):
        run_recipe(load_recipe(make_recipe(stages=["generate", "verfy"])), tmp_path / "run")


def test_bad_input_loses_nothing_already_done(make_recipe, tmp_path: Path, problems_file):
    run_dir = tmp_path / "run"
    first = run_recipe(load_recipe(make_recipe()), run_dir)
    good = problems_file.read_text()
    problems_file.write_text(good + '{"question": 5, "answer": "1", "uid": "z"}\n')
    with pytest.raises(Exception, match=r"problems\.jsonl row 41, field 'question'"):
        run_recipe(load_recipe(make_recipe()), run_dir)
    assert (run_dir / "dataset" / "README.md").exists()
    problems_file.write_text(good)
    again = run_recipe(load_recipe(make_recipe()), run_dir)
    assert again.stats["generate"]["counts"]["cache_hits"] == 160
    assert again.stats["select"]["out"] == first.stats["select"]["out"]


def test_stats_survive_in_store(make_recipe, tmp_path: Path):
    run_dir = tmp_path / "run"
    result = run_recipe(load_recipe(make_recipe()), run_dir)
    assert RunStore(run_dir).load_stats() == result.stats


def test_curation_stages_in_a_run(make_recipe, tmp_path: Path, problems_file: Path):
    bench = write_jsonl(
        tmp_path / "bench.jsonl",
        [
            {"unique_id": "b1", "problem": "What is 3 + 9?"},
            {"unique_id": "b2", "problem": "Unrelated benchmark item about circles and chords."},
        ],
    )
    rows = problems_file.read_text()
    problems_file.write_text(
        rows + '{"question": "What is  3 + 9?", "answer": "12", "uid": "x"}\n'
        '{"question": "what is 3 + 9 ?", "answer": "12", "uid": "y"}\n'
    )
    recipe = make_recipe(
        dedup={"near": {"threshold": 0.8}},
        decontaminate={"benchmarks": ["math500"], "files": {"math500": str(bench)}},
        trace_dedup={},
        filters={"truncated": True},
        teacher={"backend": "simulated", "samples": 4, "max_tokens": 1024, "truncate_rate": 0.2},
    )
    run_dir = tmp_path / "run"
    result = run_recipe(load_recipe(recipe), run_dir)
    stats = result.stats
    assert list(stats) == [
        "source",
        "dedup",
        "decontaminate",
        "generate",
        "verify",
        "trace_dedup",
        "select",
        "filter",
        "dataset",
    ]
    assert funnel_problems(stats) == []
    assert stats["dedup"]["dropped"] == {"exact_duplicate": 1}
    assert stats["decontaminate"]["dropped"] == {"contaminated_math500": 1}
    # 42 rows: one repeats a problem exactly (source), one after normalising (dedup), and
    # "What is 3 + 9?" is the benchmark's item b1 (decontaminate).
    assert stats["source"]["dropped"] == {"duplicate_problem": 1}
    assert stats["generate"]["in"] == 39
    # truncated traces have no answer: select already dropped them as unverifiable
    assert stats["select"]["dropped"]["unverifiable"] > 0
    assert set(stats["filter"]["dropped"]) <= {"language_mix", "no_boxed_answer", "repetition"}
    report = json.loads((run_dir / "reports" / "decontamination.json").read_text())
    assert report["math500"]["contaminated"] == 1
    assert report["math500"]["matches"][0]["item"] == "b1"


def test_retry_failed_resends_only_the_failures(make_recipe, tmp_path: Path, monkeypatch):
    from curate.generate.simulated import SimulatedTeacher

    original = SimulatedTeacher.write
    calls: list[int] = []

    def flaky(self, request, sample_idx):
        calls.append(sample_idx)
        sample = original(self, request, sample_idx)
        if failing and sample_idx == 3:
            sample.error, sample.reasoning, sample.completion = "HTTP 500", None, None
        return sample

    failing = True
    monkeypatch.setattr(SimulatedTeacher, "write", flaky)
    run_dir = tmp_path / "run"
    first = run_recipe(load_recipe(make_recipe()), run_dir)
    assert first.stats["generate"]["dropped"] == {"generation_failed": 40}
    failing, calls[:] = False, []
    same = run_recipe(load_recipe(make_recipe()), run_dir)
    assert calls == [] and same.stats == first.stats  # a plain rerun does nothing
    retried = run_recipe(load_recipe(make_recipe()), run_dir, retry_failed=True)
    assert calls == [3] * 40  # only the failed samples were sent again
    assert retried.stats["generate"]["dropped"] == {}
    assert funnel_problems(retried.stats) == []
    assert retried.stats["select"]["out"] > first.stats["select"]["out"]


def test_a_new_run_whose_source_fails_leaves_no_run_directory(tmp_path: Path, make_recipe):
    """Bad input found while the source is read (row 3 here) is an error that names the
    file and row; a run directory that did not exist before is not left half-made, and an
    existing one is kept (what it holds may be resumed)."""
    from curate.errors import SourceError

    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"question": "1+1", "answer": "2", "uid": "a"}\n'
        '{"question": "2+2", "answer": "4", "uid": "b"}\n'
        '{"question": 7, "answer": "7", "uid": "c"}\n'
    )
    recipe = load_recipe(
        make_recipe(
            source={
                "kind": "files",
                "path": str(bad),
                "columns": {"problem": "question", "reference": "answer"},
            }
        )
    )
    run_dir = tmp_path / "runs" / "fresh"
    with pytest.raises(SourceError, match=r"bad\.jsonl row 3, field 'question'"):
        run_recipe(recipe, run_dir)
    assert not run_dir.exists()
    kept = tmp_path / "runs" / "kept"
    kept.mkdir(parents=True)
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(SourceError):
        run_recipe(recipe, kept)
    assert (kept / "notes.txt").read_text() == "mine"
