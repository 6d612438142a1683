"""Math-Verify's own test cases run through curate's math verifier.

Each case of Math-Verify's test suite (gold, prediction, expected 1 or 0) is read from its
test files (../shared/evaldata/math_verify_tests, not copied here) and judged by curate's
math verifier, with the gold as the reference and the prediction as the model's answer.
Cases written for math-verify's default configuration must all agree; the others (other
extraction configs, precision, set relations) are listed with the reason they may differ.
For comparison the same cases go through plain math-verify (parse + verify, defaults).

    python benchmarks/peer_suites.py [--suite DIR] [--json report.json]
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SUITE = Path(__file__).resolve().parents[2] / "shared" / "evaldata" / "math_verify_tests"


@dataclass(frozen=True)
class Case:
    file: str
    test: str
    gold: str
    pred: str
    expected: bool
    default_config: bool
    config: str  # what differs from the defaults, when something does


DEFAULTS = {
    "match_types": ["latex", "expr"],
    "precision": 6,
    "strict": True,
    "allow_set_relation_comp": False,
}


def _compare_call(function: ast.FunctionDef) -> ast.Call | None:
    """The call that judges a case: Math-Verify's compare_strings helper, or verify itself."""
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in (
            "compare_strings",
            "verify",
        ):
            return node
    return None


def _settings(call: ast.Call, values: dict[str, Any]) -> dict[str, Any]:
    """The keyword settings of the judging call, parameters filled in from the case."""
    settings: dict[str, Any] = {}
    for keyword in call.keywords:
        if isinstance(keyword.value, ast.Name):
            settings[str(keyword.arg)] = values.get(keyword.value.id)
        else:
            settings[str(keyword.arg)] = ast.literal_eval(keyword.value)
    return settings


def _cases_of(function: ast.FunctionDef, file: str) -> list[Case]:
    found = []
    call = _compare_call(function)
    for decorator in function.decorator_list:
        if not (isinstance(decorator, ast.Call) and len(decorator.args) >= 2):
            continue
        names = decorator.args[0]
        if not isinstance(names, ast.Constant) or not isinstance(names.value, str):
            continue
        fields = [n.strip() for n in names.value.split(",")]
        if fields[:2] != ["gold", "pred"] or call is None:
            continue
        try:
            rows = ast.literal_eval(decorator.args[1])
        except ValueError:
            continue
        for row in rows:
            values = dict(zip(fields, row, strict=False))
            settings = _settings(call, values)
            changed = {k: v for k, v in settings.items() if DEFAULTS.get(k) != v}
            expected = values.get("expected", values.get("result"))
            found.append(
                Case(
                    file,
                    function.name,
                    str(values["gold"]),
                    str(values["pred"]),
                    bool(expected),
                    not changed,
                    "" if not changed else f"{changed}",
                )
            )
    return found


def load_cases(suite: Path) -> list[Case]:
    cases: list[Case] = []
    for path in sorted(suite.glob("test_*.py")):
        source = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef):
                cases += _cases_of(node, path.name)
    return cases


def plain_math_verify(cases: list[Case]) -> list[bool | None]:
    from math_verify import parse, verify

    out: list[bool | None] = []
    for case in cases:
        try:
            out.append(bool(verify(parse(case.gold), parse(case.pred))))
        except Exception:
            out.append(None)
    return out


def curate_verdicts(cases: list[Case]) -> list[tuple[str, str | None]]:
    from curate.verify.base import ProblemAnswers
    from curate.verify.math import MathVerifier

    verifier = MathVerifier(timeout_s=5)
    try:
        results = verifier.verify([ProblemAnswers(c.gold, None, [c.pred]) for c in cases])
    finally:
        verifier.close()
    return [(r[0].verdict, r[0].reason) for r in results]


def report(cases: list[Case]) -> dict[str, Any]:
    started = time.perf_counter()
    ours = curate_verdicts(cases)
    seconds = time.perf_counter() - started
    plain = plain_math_verify(cases)
    rows = []
    for case, (verdict, reason), theirs in zip(cases, ours, plain, strict=True):
        agrees = (verdict == "correct") == case.expected
        rows.append(
            {
                **asdict(case),
                "verdict": verdict,
                "reason": reason,
                "plain_math_verify": theirs,
                "agrees": agrees,
            }
        )
    default = [r for r in rows if r["default_config"]]
    return {
        "cases": len(rows),
        "default_config": len(default),
        "default_agree": sum(r["agrees"] for r in default),
        "other_agree": sum(r["agrees"] for r in rows if not r["default_config"]),
        "plain_math_verify_agree": sum(
            (r["plain_math_verify"] is True) == r["expected"] for r in rows
        ),
        "seconds": round(seconds, 2),
        "disagreements": [r for r in rows if not r["agrees"]],
    }


HUMANEVAL = SUITE.parent / "humaneval_openai" / "HumanEval.jsonl.gz"
EXIT_TRICKS = {
    "sys.exit(0)": "import sys\nsys.exit(0)\n",
    "os._exit(0)": "import os\nos._exit(0)\n",
    "raise SystemExit": "raise SystemExit\n",
    "atexit os._exit(0)": "import atexit, os\natexit.register(os._exit, 0)\n",
}
FLIPS = [(" < ", " >= "), (" > ", " <= "), (" == ", " != "), (" <= ", " > "), (" >= ", " < ")]


def mutants(row: dict[str, Any]) -> dict[str, str | None]:
    """Wrong versions of a canonical solution; None where a kind does not apply."""
    body = row["canonical_solution"]
    stub = row["prompt"] + "    return None\n"
    found: dict[str, str | None] = {
        "stub": stub,
        "infinite loop": row["prompt"] + "    while True:\n        pass\n",
    }
    for name, trick in EXIT_TRICKS.items():
        found[f"stub + {name}"] = stub + trick
    flip = next((pair for pair in FLIPS if pair[0] in body), None)
    found["flipped comparison"] = row["prompt"] + body.replace(*flip, 1) if flip else None
    number = re.search(r"(?<![\w.])(\d+)(?![\w.])", body)
    found["off by one"] = (
        row["prompt"]
        + body[: number.start()]
        + str(int(number.group(1)) + 1)
        + body[number.end() :]
        if number
        else None
    )
    return found


def humaneval_report(limit: int | None) -> dict[str, Any]:
    """Canonical solutions must all pass in the sandbox; mutants must fail."""
    from curate.verify.base import ProblemAnswers
    from curate.verify.code import CodeVerifier

    with gzip.open(HUMANEVAL, "rt") as handle:
        rows = [json.loads(line) for line in handle][:limit]
    kinds = list(mutants(rows[0]))
    problems, asked = [], []
    for row in rows:
        tests = json.dumps({"test": row["test"], "entry_point": row["entry_point"]})
        wrong = mutants(row)
        answers = [row["prompt"] + row["canonical_solution"]] + [wrong[k] or "" for k in kinds]
        problems.append(
            ProblemAnswers(None, None, [f"```python\n{a}\n```" for a in answers], tests)
        )
        asked.append([True] + [wrong[k] is not None for k in kinds])
    verifier = CodeVerifier(timeout_s=3)
    started = time.perf_counter()
    results = verifier.verify(problems)
    seconds = time.perf_counter() - started
    out: dict[str, Any] = {"problems": len(rows), "seconds": round(seconds, 1)}
    out["canonical pass"] = sum(r[0].verdict == "correct" for r in results)
    for position, kind in enumerate(kinds, start=1):
        tried = [i for i, flags in enumerate(asked) if flags[position]]
        survivors = [rows[i]["task_id"] for i in tried if results[i][position].verdict == "correct"]
        out[kind] = {
            "tried": len(tried),
            "failed": len(tried) - len(survivors),
            "survivors": survivors,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, default=SUITE)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--humaneval-limit", type=int, default=None, help="0 skips HumanEval")
    args = parser.parse_args()
    if not args.suite.exists():
        raise SystemExit(f"{args.suite}: not present (Math-Verify's tests are read from there)")
    result = report(load_cases(args.suite))
    others = result["cases"] - result["default_config"]
    print(f"Math-Verify test cases: {result['cases']} ({result['default_config']} default config)")
    print(
        f"curate agrees on default-config cases: {result['default_agree']}/"
        f"{result['default_config']}; on the others: {result['other_agree']}/{others}"
    )
    print(
        f"plain math-verify (parse + verify, defaults) agrees: "
        f"{result['plain_math_verify_agree']}/{result['cases']}"
    )
    print(f"curate time: {result['seconds']} s")
    reasons = Counter(
        (d["config"] or "default config", d["verdict"], d["reason"])
        for d in result["disagreements"]
    )
    for (config, verdict, reason), n in reasons.most_common():
        print(f"  {n:3d} disagree: {config}; curate says {verdict} ({reason})")
    for d in result["disagreements"]:
        print(
            f"    {d['file']}::{d['test']} gold={d['gold']!r} pred={d['pred'][:60]!r} "
            f"expected={int(d['expected'])} curate={d['verdict']}/{d['reason']} [{d['config']}]"
        )
    if HUMANEVAL.exists() and args.humaneval_limit != 0:
        code = humaneval_report(args.humaneval_limit)
        result["humaneval"] = code
        print(
            f"HumanEval: canonical solutions passing in the sandbox: {code['canonical pass']}/"
            f"{code['problems']} ({code['seconds']} s for all runs)"
        )
        for kind, figures in code.items():
            if isinstance(figures, dict):
                print(
                    f"  mutant '{kind}': {figures['failed']}/{figures['tried']} fail"
                    + (
                        f"; survivors (check by hand): {figures['survivors']}"
                        if figures["survivors"]
                        else ""
                    )
                )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
