"""`curate loop`: round after round, sample -> verify -> select -> train.

Round r is an ordinary run directory, LOOP/round-r, run from the base recipe with three
changes: `round: r`, `run.problems` naming the problems this round samples, and from round 1
on the teacher replaced by the policy the previous round trained. After the run: optional
rationalisation (LOOP/round-r/rationalize), the merged training set (LOOP/round-r/train), the
training command, and the held-out evaluation of the new policy (LOOP/round-r/eval). Every
step is recorded in LOOP/loop.json as it finishes, so a rerun resumes where it stopped.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from curate.errors import LoopError, RecipeError
from curate.lock import exclusive
from curate.loop import commands, rounds
from curate.loop.settings import LoopConfig
from curate.progress import Progress, QuietProgress
from curate.recipe import Recipe, apply_override, validate
from curate.records import stable_hash
from curate.runner import run_recipe

STATE = "loop.json"
Say = Callable[[str], None]


@dataclass
class Loop:
    """A loop directory and the base recipe it runs."""

    root: Path
    raw: dict[str, Any]
    recipe: Recipe
    config: LoopConfig
    state: dict[str, Any]

    def round_dir(self, number: int) -> Path:
        return self.root / f"round-{number}"

    def record(self, number: int) -> dict[str, Any]:
        return dict(self.state["rounds"].setdefault(str(number), {}))

    def save(self, number: int, **parts: Any) -> None:
        self.state["rounds"].setdefault(str(number), {}).update(parts)
        path = self.root / STATE
        path.write_text(json.dumps(self.state, indent=2, sort_keys=True), encoding="utf-8")


def open_loop(recipe_path: Path, overrides: list[str], root: Path | None) -> Loop:
    try:
        raw = yaml.safe_load(recipe_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(f"{recipe_path}: no such recipe file") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{recipe_path}: a recipe is a mapping of sections")
    for item in overrides:
        apply_override(raw, item)
    recipe = validate(raw, label=str(recipe_path), overrides=overrides)
    if recipe.teacher is None:
        raise RecipeError(f"{recipe_path}: a loop needs a 'teacher' section (round 0 samples it)")
    root = root or Path("runs") / f"{recipe.name}-loop"
    root.mkdir(parents=True, exist_ok=True)
    path = root / STATE
    state = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"rounds": {}}
    return Loop(root, raw, recipe, recipe.loop or LoopConfig(), state)


def run_loop(
    loop: Loop,
    count: int,
    only: int | None = None,
    progress: Progress | None = None,
    say: Say = print,
) -> list[dict[str, Any]]:
    """Run rounds 0..count-1 (or just round `only`); returns each round's record."""
    with exclusive(loop.root, "curate loop"):
        return _run_rounds(loop, count, only, progress or QuietProgress(), say)


def _run_rounds(
    loop: Loop, count: int, only: int | None, progress: Progress, say: Say
) -> list[dict[str, Any]]:
    catalogue = rounds.catalogue(loop.root, loop.recipe, loop.config, seed=loop.recipe.seed)
    numbers = [only] if only is not None else list(range(count))
    for number in numbers:
        if number > 0 and "train" not in loop.record(number - 1) and loop.config.train:
            raise LoopError(f"round {number} needs round {number - 1} trained first")
        if not run_round(loop, number, catalogue, progress, say):
            break
    rounds.plot(loop.root, loop.state)
    return [loop.state["rounds"][k] for k in sorted(loop.state["rounds"], key=int)]


def run_round(
    loop: Loop, number: int, catalogue: pl.DataFrame, progress: Progress, say: Say
) -> bool:
    """One round, each step skipped when loop.json says it is done; False when the round
    had no problem left to sample."""
    folder = loop.round_dir(number)
    ids = rounds.round_problems(catalogue, loop.config, number, rounds.history(loop.root, number))
    if not ids:
        say(f"round {number}: no problem left to sample; the loop stops here")
        return False
    folder.mkdir(parents=True, exist_ok=True)
    problems = rounds.write_ids(folder / "problems.txt", ids)
    sampler = sampler_section(loop, number)
    recipe = round_recipe(loop, number, sampler, problems)
    done = loop.record(number)
    if done.get("recipe") != _digest(recipe) or "sampled" not in done:
        who = "the teacher" if number == 0 else describe(sampler)
        say(f"round {number}: sampling {len(ids):,} problems with {who}")
        serve = _serve(loop, number)
        with commands.serving(serve, str(sampler.get("model")), folder / "serve.log") as port:
            run_recipe(_with_port(recipe, port), folder, progress)
            if loop.config.rationalize is not None:
                rationalize(loop, number, sampler, port, progress)
        metrics = rounds.round_metrics(loop.root, number)
        loop.save(number, recipe=_digest(recipe), sampled=metrics)
        loop.state["rounds"][str(number)].pop("train", None)  # new data: train again
        loop.state["rounds"][str(number)].pop("eval", None)
    data_file = rounds.merge(loop.root, number, loop.config.merge, sampler_messages(loop, number))
    loop.save(number, training_rows=rounds.row_count(data_file))
    train(loop, number, data_file, say)
    evaluate(loop, number, catalogue, progress, say)
    publish(loop, number, say)
    return True


def publish(loop: Loop, number: int, say: Say) -> None:
    """The round's run on the Hub, branch round-R; its card lists every round so far."""
    if not loop.config.publish or "published" in loop.record(number):
        return
    from curate.publish.repo import publish_staged, stage_repository

    staged = stage_repository(loop.round_dir(number))
    done = publish_staged(staged, f"round-{number}", None, None)
    loop.save(number, published={"repo_id": done.repo_id, "revision": done.revision})
    say(f"round {number}: published to {done.repo_id}@{done.revision}")


def _digest(raw: dict[str, Any]) -> str:
    return stable_hash(json.dumps(raw, sort_keys=True, default=str))


def sampler_section(loop: Loop, number: int) -> dict[str, Any]:
    """The teacher section round `number` samples with: the teacher in round 0, then the
    policy the previous round trained."""
    teacher = copy.deepcopy(loop.raw["teacher"])
    if number == 0:
        return {**teacher}
    policy = loop.record(number - 1).get("train", {}).get("output")
    section = copy.deepcopy(loop.config.policy) if loop.config.policy else dict(teacher)
    if section.get("backend") == "simulated":
        section["trained_rounds"] = number  # the stand-in improves by gain_per_round
        return section
    if policy is None:
        raise LoopError(
            f"round {number} samples the policy round {number - 1} trained, but the loop has "
            "no training command (loop.train.command)"
        )
    if not loop.config.policy:
        section["model"] = "{policy}"
    filled: dict[str, Any] = _filled(section, {"policy": policy})
    return filled


def sampler_messages(loop: Loop, number: int) -> Any:
    """The sampler's config, which gives the prompt a rationalised trace is published with."""
    section = sampler_section(loop, number)
    return _validated_teacher(loop, section)


def _validated_teacher(loop: Loop, section: dict[str, Any]) -> Any:
    raw = copy.deepcopy(loop.raw)
    raw["teacher"] = _with_port_section(section, 1)
    return validate(raw, label="loop round").teacher


def round_recipe(
    loop: Loop, number: int, sampler: dict[str, Any], problems: Path, **changes: Any
) -> dict[str, Any]:
    raw = copy.deepcopy(loop.raw)
    raw.pop("loop", None)
    raw["name"] = f"{loop.recipe.name}-round-{number}"
    raw["round"] = number
    raw["teacher"] = sampler
    raw.setdefault("run", {})
    raw["run"] = {**(raw["run"] or {}), "problems": str(problems)}
    raw.update(changes)
    return raw


def _with_port(raw: dict[str, Any], port: int | None) -> Any:
    raw = copy.deepcopy(raw)
    raw["teacher"] = _with_port_section(raw["teacher"], port)
    return validate(raw, label=f"round {raw['round']}")


def _with_port_section(section: dict[str, Any], port: int | None) -> dict[str, Any]:
    return _filled(section, {"port": port}) if port is not None else section


def _filled(value: Any, values: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: _filled(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v, values) for v in value]
    if isinstance(value, str):
        for name, text in values.items():
            value = value.replace("{" + name + "}", str(text))
    return value


def _serve(loop: Loop, number: int) -> Any:
    return loop.config.serve if number > 0 else None


def describe(section: dict[str, Any]) -> str:
    model = section.get("model", "?")
    if section.get("backend") == "simulated":
        return f"the simulated stand-in (trained rounds: {section.get('trained_rounds', 0)})"
    return f"{section.get('backend')} {model}"


def rationalize(
    loop: Loop, number: int, sampler: dict[str, Any], port: int | None, progress: Progress
) -> None:
    """Problems this round failed, sampled again with the reference as a hint."""
    assert loop.config.rationalize is not None
    folder = loop.round_dir(number)
    failed = rounds.failed_problems(folder)
    if not failed:
        return
    problems = rounds.write_ids(folder / "rationalize-problems.txt", failed)
    hinted = {**sampler, "prompt_template": loop.config.rationalize.hint_template}
    recipe = round_recipe(loop, number, hinted, problems)
    run_recipe(_with_port(recipe, port), folder / "rationalize", progress)


def train(loop: Loop, number: int, data_file: Path, say: Say) -> None:
    config = loop.config.train
    done = loop.record(number).get("train")
    if config is None or (done and Path(done["output"]).exists()):
        return
    folder = loop.round_dir(number)
    previous = loop.record(number - 1).get("train", {}).get("output") if number else None
    values = {
        "data_file": data_file,
        "dataset": data_file.parent.parent,
        "policy": previous or config.base_model or "",
        "base_model": config.base_model or "",
        "output": folder / "policy",
        "round": number,
        "python": sys.executable,
    }
    say(f"round {number}: training on {rounds.row_count(data_file):,} rows")
    try:
        record = commands.train(config, values, folder / "train.log")
    except LoopError:
        loop.save(number, train_failed=str(folder / "train.log"))
        raise
    loop.save(number, train=record)
    say(f"round {number}: trained in {record['seconds']:.0f} s -> {record['output']}")


def evaluate(
    loop: Loop, number: int, catalogue: pl.DataFrame, progress: Progress, say: Say
) -> None:
    """pass@1 and pass@k on the held-out problems of the policy this round trained."""
    held = loop.config.held_out
    if held is None or "eval" in loop.record(number):
        return
    ids = catalogue.filter(pl.col("split") == "held_out")["problem_id"].to_list()
    if not ids:
        return
    folder = loop.round_dir(number)
    sampler = sampler_section(loop, number + 1) if loop.config.train or _simulated(loop) else {}
    if not sampler:
        return
    sampler = {**sampler, "samples": held.samples}
    if held.temperature is not None:
        sampler["temperature"] = held.temperature
    problems = rounds.write_ids(folder / "held-out.txt", ids)
    recipe = round_recipe(loop, number, sampler, problems, stages=["generate", "verify"])
    recipe.pop("select", None)
    serve = _serve(loop, number + 1)
    with commands.serving(serve, str(sampler.get("model")), folder / "serve-eval.log") as port:
        run_recipe(_with_port(recipe, port), folder / "eval", progress)
    scores = rounds.pass_at_k(folder / "eval", catalogue, held.samples)
    loop.save(number, eval=scores)
    say(
        f"round {number}: held-out pass@1 {scores['pass@1']:.3f}, "
        f"pass@{held.samples} {scores[f'pass@{held.samples}']:.3f}"
    )


def _simulated(loop: Loop) -> bool:
    section = loop.config.policy or loop.raw["teacher"]
    return bool(section.get("backend") == "simulated")


def loop_lines(root: Path) -> list[str]:
    """`curate loop status`: a table of the rounds in loop.json."""
    path = root / STATE
    if not path.exists():
        raise LoopError(f"{root}: not a loop directory (no {STATE})")
    state = json.loads(path.read_text(encoding="utf-8"))
    header = (
        f"{'round':>5} {'sampler':>8} {'problems':>8} {'solved':>7} {'total':>6} "
        f"{'accepted':>8} {'lucky':>6} {'rational':>8} {'tok/acc':>8} {'train':>12} "
        f"{'pass@1':>7} {'pass@k':>7}"
    )
    lines = [header]
    for number in sorted(state["rounds"], key=int):
        lines.append(_round_line(int(number), state["rounds"][number]))
    lines.append(f"per problem: {root / 'per_problem.parquet'}   plots: {root / 'report'}")
    return lines


def _round_line(number: int, record: dict[str, Any]) -> str:
    sampled = record.get("sampled", {})
    trained = record.get("train")
    if trained:
        training = f"ok {trained['seconds']:.0f}s"
    else:
        training = "failed" if record.get("train_failed") else "-"
    scores = record.get("eval", {})
    k = next((key for key in scores if key.startswith("pass@") and key != "pass@1"), None)
    tokens = sampled.get("tokens_per_accepted")
    return (
        f"{number:>5} {sampled.get('sampler', '-'):>8} {sampled.get('problems', 0):>8} "
        f"{sampled.get('solved', 0):>7} {sampled.get('solved_total', 0):>6} "
        f"{sampled.get('accepted', 0):>8} {sampled.get('lucky_hits', 0):>6} "
        f"{sampled.get('rationalized', 0):>8} {tokens if tokens is not None else '-':>8} "
        f"{training:>12} {scores.get('pass@1', '-'):>7} {scores.get(k, '-') if k else '-':>7}"
    )
