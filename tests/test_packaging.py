"""The install a new user copies from the README works as written: no warnings, no extras."""

from __future__ import annotations

import ast
import re
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _extras_asked(requirements: list[str], depth: int = 0) -> list[tuple[str, str, str]]:
    """(who asks, dependency, extra as spelled) for our requirements and, through the extras
    we ask for, theirs: pip warns 'does not provide the extra' when a spelling is not offered."""
    found = []
    for text in requirements:
        requirement = Requirement(text)
        for extra in requirement.extras:
            found.append(("curate" if depth == 0 else text, requirement.name, extra))
            nested = [
                r.split(";")[0]
                for r in metadata.requires(requirement.name) or []
                if f'extra == "{extra}"' in r or f"extra == '{extra}'" in r
            ]
            if depth < 2:
                found += _extras_asked(nested, depth + 1)
    return found


def test_every_extra_asked_for_is_offered_as_spelled():
    asked = _extras_asked(PYPROJECT["project"]["dependencies"])
    for who, name, extra in asked:
        offered = metadata.metadata(name).get_all("Provides-Extra") or []
        assert extra in offered, f"{who} asks {name} for [{extra}]; it offers {offered}"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_types_check_without_the_extras():
    """mypy runs in the README's test command, where no extra is installed: every module an
    extra brings must be listed as allowed to be missing."""
    optional = {"sentence_transformers", "transformers", "vllm", "torch", "argilla", "httpx"}
    used = set().union(*(_imported_modules(p) for p in (ROOT / "curate").rglob("*.py")))
    allowed = set()
    for override in PYPROJECT["tool"]["mypy"]["overrides"]:
        if override.get("ignore_missing_imports"):
            allowed.update(m.removesuffix(".*") for m in override["module"])
    assert (used & optional) - allowed == set()


def test_the_test_extra_needs_no_torch_or_transformers():
    heavy = {"torch", "transformers", "sentence-transformers", "vllm", "trl"}
    test_extra = PYPROJECT["project"]["optional-dependencies"]["test"]
    names = {_normal(re.split(r"[<>=\[ ;]", r)[0]) for r in test_extra}
    assert names & heavy == set()


def test_ci_runs_the_readme_test_command_first():
    """.ci/run reads the command from the README and runs it before installing extras."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = readme.split("Install and run the tests", 1)[1].split("```bash\n", 1)[1]
    command = command.split("\n", 1)[0]
    ci = ROOT / ".ci" / "run"
    if not ci.exists():
        pytest.skip("no .ci/run in this checkout")
    script = ci.read_text(encoding="utf-8")
    printed = subprocess.run(
        ["bash", "-c", script.split("rm -rf .venv", 1)[0] + 'printf %s "$test_command"'],
        capture_output=True,
        text=True,
        cwd=ROOT / ".ci",  # the script cds to its parent
        check=True,
    ).stdout
    assert printed == command
    step_one = script.index('bash -euo pipefail -c "$test_command"')
    assert step_one < script.index("pip install -q")
