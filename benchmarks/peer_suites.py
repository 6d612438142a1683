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
import sys
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
    cases = [c for c in cases if (c.gold, c.pred) not in SUITE_ERRORS]
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


# A case whose expectation is itself wrong, with why; counted apart, never hidden.
SUITE_ERRORS = {
    ("$1 - \\frac{1}{\\mathrm{e}}$", "$1 + \\frac{1}{\\mathrm{e}}$"): "1 + 1/e is not 1 - 1/e: "
    "the case passes in math-verify only because its unit removal deletes the \\mathrm{e}",
}


def curate_rewards(cases: list[Any]) -> list[float | None]:
    """curate's reward (VerifierReward, None for a problem it cannot judge) per case, cases
    with the same options judged together."""
    from curate.answers import REASONING_TAGS
    from curate.rewards import VerifierReward

    out: dict[int, float | None] = {}
    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, case in enumerate(cases):
        groups.setdefault((case.require_reasoning, case.think_tags), []).append(index)
    for (required, tags), indexes in groups.items():
        reward = VerifierReward(
            "math",
            unverifiable=None,
            workers=2,
            require_reasoning=required,
            think_tags=tags or REASONING_TAGS,
        )
        try:
            scores = reward(
                completions=[cases[i].completion for i in indexes],
                reference=[cases[i].gold for i in indexes],
            )
        finally:
            reward.close()
        out.update(zip(indexes, scores, strict=True))
    return [out[i] for i in range(len(cases))]


def plain_reward(case: Any) -> float | None:
    """The plain math-verify reward loop of open-r1 and TRL: skip a gold that parses to
    nothing, else parse the completion (boxed first) and verify; for a reasoning reward, only
    what follows the last closing delimiter, and 0.0 without one."""
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import LatexExtractionConfig, parse, verify

    text = case.completion
    if case.require_reasoning:
        closing = [tag[1] for tag in case.think_tags] or ["</think>"]
        found = [end for end in closing if end in text]
        if not found:
            return 0.0
        text = text.rpartition(found[0])[2]
    gold = parse(case.gold, extraction_mode="first_match")
    if not gold:
        return None
    normalization = NormalizationConfig(
        nits=False, malformed_operators=False, basic_latex=True, boxed="all", units=True
    )
    extraction = LatexExtractionConfig(
        normalization_config=normalization, boxed_match_priority=0, try_extract_without_anchor=False
    )
    answer = parse(text, extraction_config=[extraction], extraction_mode="first_match")
    try:
        return float(verify(gold, answer))
    except Exception:
        return None


def reward_report() -> dict[str, Any]:
    """Per suite of benchmarks/peer_cases.py: cases, how many curate and the plain loop get
    right, and how often curate says 0.0 where the suite says skip (must be never)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from peer_cases import CASES

    ours = curate_rewards(CASES)
    suites: dict[str, dict[str, Any]] = {}
    for case, score in zip(CASES, ours, strict=True):
        plain = plain_reward(case)
        suite = suites.setdefault(
            case.suite,
            {
                "source": case.source,
                "cases": 0,
                "curate": 0,
                "plain": 0,
                "curate_zero_where_skip": 0,
                "disagreements": [],
            },
        )
        suite["cases"] += 1
        suite["curate"] += score == case.expected
        suite["plain"] += plain == case.expected
        suite["curate_zero_where_skip"] += case.expected is None and score == 0.0
        if score != case.expected:
            suite["disagreements"].append(
                {
                    "test": case.test,
                    "gold": case.gold,
                    "completion": case.completion,
                    "expected": case.expected,
                    "curate": score,
                    "plain": plain,
                }
            )
    return suites


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


def gym_report() -> dict[str, Any]:
    """Every reasoning-gym task that builds: its own answer (where it has one) boxed, bare and
    in `<answer>` tags, judged by curate's dispatch; counts of tasks scoring 1 in each."""
    import warnings

    import reasoning_gym
    from reasoning_gym.factory import DATASETS

    from curate.verify.dispatch import Dispatcher, Item

    built, items, labels = [], [], []
    for name in sorted(DATASETS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data = reasoning_gym.create_dataset(name, size=2, seed=7)
                entries = [data[i] for i in range(2)]
        except Exception:  # a task that needs settings of its own does not build
            continue
        built.append(name)
        if any(entry["answer"] is None for entry in entries):
            continue  # no answer of its own: its scorer checks one
        for index, entry in enumerate(entries):
            answer = str(entry["answer"])
            metadata = json.dumps({"gym": {"task": name, "size": 2, "seed": 7, "index": index}})
            for kind, text in (
                ("boxed", f"The answer is \\boxed{{{answer}}}"),
                ("bare", answer),
                ("tags", f"<think>\\boxed{{0}}</think>\n<answer>{answer}</answer>"),
            ):
                items.append(Item(text, answer, "puzzle", metadata))
                labels.append((name, kind))
    dispatcher = Dispatcher("auto", workers=2)
    try:
        judged = dispatcher.judge(items)
    finally:
        dispatcher.close()
    failed = {
        (name, kind)
        for (name, kind), (r, _) in zip(labels, judged, strict=True)
        if r.verdict != "correct"
    }
    answered = sorted({name for name, _ in labels})
    scored = {
        kind: sum((name, kind) not in failed for name in answered)
        for kind in ("boxed", "bare", "tags")
    }
    return {
        "built": len(built),
        "with_answers": len(answered),
        "scored": scored,
        "failed": sorted(failed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, default=SUITE)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--humaneval-limit", type=int, default=None, help="0 skips HumanEval")
    args = parser.parse_args()
    rewards = reward_report()
    print("Reward suites (curate's VerifierReward vs the plain math-verify reward loop):")
    for name, suite in rewards.items():
        print(
            f"  {name}: {suite['cases']} cases; curate {suite['curate']}/{suite['cases']}, "
            f"plain math-verify {suite['plain']}/{suite['cases']}; curate 0.0 where the suite "
            f"skips: {suite['curate_zero_where_skip']}   [{suite['source']}]"
        )
        for d in suite["disagreements"]:
            print(
                f"    {d['test']}: gold={d['gold']!r} expected={d['expected']} "
                f"curate={d['curate']} plain={d['plain']}"
            )
    gym = gym_report()
    print(
        f"reasoning-gym: {gym['built']} tasks build, {gym['with_answers']} with an answer of "
        f"their own; scoring 1 with it: " + ", ".join(f"{k} {n}" for k, n in gym["scored"].items())
    )
    if not args.suite.exists():
        raise SystemExit(f"{args.suite}: not present (Math-Verify's tests are read from there)")
    all_cases = load_cases(args.suite)
    errors = [c for c in all_cases if (c.gold, c.pred) in SUITE_ERRORS]
    result = report(all_cases)
    result["rewards"] = rewards
    result["reasoning_gym"] = gym
    for case in errors:
        print(
            f"  left out, the case is wrong: {case.test} {case.gold!r} vs {case.pred!r}: "
            f"{SUITE_ERRORS[(case.gold, case.pred)]}"
        )
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
