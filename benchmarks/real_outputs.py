"""curate's math verdicts on real model outputs, against their harness's labels and against a
plain math-verify loop, with every disagreement listed by class.

The development set is ../shared/evaldata/real_outputs_dev (1,517 chain-of-thought answers of
gemma-2-27b-it to MATH-500, Minerva Math, OlympiadBench, AMC 2023 and AIME 2024, each with the
Qwen2.5-Math harness's own label; not copied here). The labels are a harness's: about 3% of
the rows where a verifier and the label disagree are the harness's errors (its SOURCE.md says
which kinds), so agreement is not accuracy; read the listed rows.

    python benchmarks/real_outputs.py [--file PATH] [--limit N] [--json report.json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

DEV = (
    Path(__file__).resolve().parents[2]
    / "shared/evaldata/real_outputs_dev/gemma2_27b_qwen25math_harness.jsonl"
)
SCIENTIFIC_GOLD = re.compile(r"^-?\d+(?:\.\d+)?e-?\d+$")


def curate_verdicts(rows: list[dict[str, Any]]) -> list[tuple[str, str | None, str | None]]:
    """(verdict, reason, extracted) per row, as `curate verify` gives them."""
    from curate.verify.dispatch import Dispatcher, Item

    dispatcher = Dispatcher("math")
    try:
        judged = dispatcher.judge([Item(r["completion"], r["reference"]) for r in rows])
    finally:
        dispatcher.close()
    return [(result.verdict, result.reason, result.extracted) for result, _ in judged]


def plain_verdict(reference: str, completion: str) -> str:
    """The loop most projects write: math-verify's defaults, the gold between dollars."""
    from math_verify import parse, verify

    try:
        gold = parse(f"${reference}$") or parse(reference)
        if not gold:
            return "unverifiable"
        return "correct" if verify(gold, parse(completion)) else "incorrect"
    except Exception:  # the plain loop counts any failure as no verdict
        return "unverifiable"


def disagreement_class(row: dict[str, Any], verdict: str, reason: str | None, found: str) -> str:
    """A rough class for reading: what kind of row curate and the label disagree on."""
    if verdict == "unverifiable":
        return f"curate unverifiable ({reason})"
    if verdict == "correct":
        if SCIENTIFIC_GOLD.match(row["reference"].strip()):
            return "label incorrect: gold in e-notation (the harness cannot read it)"
        if "=" in found:
            return "label incorrect: answer written as name = value"
        if re.search(r"\\(?:text|mathrm)|[A-Za-zÅ]{2,}\s*$", found):
            return "label incorrect: answer with a unit"
        return "label incorrect: other"
    return "label correct, curate incorrect"


def report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    start = time.perf_counter()
    ours = curate_verdicts(rows)
    curate_s = time.perf_counter() - start
    start = time.perf_counter()
    plain = [plain_verdict(r["reference"], r["completion"]) for r in rows]
    plain_s = time.perf_counter() - start
    labels = [bool(r["label"]) for r in rows]
    classes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row, (verdict, reason, found) in zip(rows, ours, strict=True):
        if (verdict == "correct") != bool(row["label"]):
            kind = disagreement_class(row, verdict, reason, found or "")
            classes[kind].append(
                {"id": row["id"], "reference": row["reference"], "extracted": found}
            )
    return {
        "rows": len(rows),
        "curate_agrees": sum(
            (v == "correct") == lab for (v, _, _), lab in zip(ours, labels, strict=True)
        ),
        "plain_agrees": sum((v == "correct") == lab for v, lab in zip(plain, labels, strict=True)),
        "curate_verdicts": dict(Counter(v for v, _, _ in ours)),
        "plain_verdicts": dict(Counter(plain)),
        "curate_correct_label_incorrect": sum(
            v == "correct" and not lab for (v, _, _), lab in zip(ours, labels, strict=True)
        ),
        "plain_correct_label_incorrect": sum(
            v == "correct" and not lab for v, lab in zip(plain, labels, strict=True)
        ),
        "curate_s": round(curate_s, 1),
        "plain_s": round(plain_s, 1),
        "disagreements": {kind: found for kind, found in sorted(classes.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=DEV)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not args.file.exists():
        sys.exit(f"{args.file} is not here (../shared/evaldata is not present)")
    with args.file.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle][: args.limit]
    result = report(rows)
    n = result["rows"]
    print(f"{n} real outputs with their harness's labels ({args.file.name})")
    for who in ("curate", "plain"):
        print(
            f"  {who:7} agrees with the label on {result[f'{who}_agrees']}/{n} "
            f"({100 * result[f'{who}_agrees'] / n:.1f}%), "
            f"correct where the label says incorrect: {result[f'{who}_correct_label_incorrect']}, "
            f"verdicts {result[f'{who}_verdicts']}, {result[f'{who}_s']} s"
        )
    print("curate's disagreements with the label, by class:")
    for kind, found in result["disagreements"].items():
        print(f"  {kind}: {len(found)}")
        for item in found:
            print(f"    {item['id']}: gold {item['reference']!r}, read {item['extracted']!r}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
